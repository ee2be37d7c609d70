{#- The pinned containerd, and its registry mirrors: pulls for each upstream
    registry host of images.yaml go to the Bootstrap registry, so that image
    references keep their upstream names and digests. #}
{%- from 'metalk8s/map.jinja' import versions, registry, pkg_version with context %}

include:
  - metalk8s.repo

Install container-selinux:
  pkg.installed:
    - name: container-selinux
    - version: "{{ pkg_version('container-selinux') }}"
    - fromrepo: metalk8s-{{ versions.packages['container-selinux'].repo }}
    - require:
      - pkgrepo: Configure the {{ versions.packages['container-selinux'].repo }} repository

Install containerd:
  pkg.installed:
    - name: containerd
    - version: "{{ pkg_version('containerd') }}"
    - fromrepo: metalk8s-{{ versions.packages.containerd.repo }}
    - require:
      - pkg: Install container-selinux
      - pkgrepo: Configure the {{ versions.packages.containerd.repo }} repository

Configure containerd:
  file.managed:
    - name: /etc/containerd/config.toml
    - source: salt://metalk8s/container-engine/containerd/files/config.toml.j2
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: true
    - context:
        registry_endpoint: http://{{ registry.host }}:{{ registry.port }}
        bootstrap_registry: {{ registry.host }}:{{ registry.port }}
        sandbox_image: {{ versions.images.pause.source }}:{{ versions.images.pause.version }}
        upstream_hosts:
{%- for host in versions.registries %}
          - {{ host }}
{%- endfor %}
    - require:
      - pkg: Install containerd

Start and enable containerd:
  service.running:
    - name: containerd
    - enable: true
    - watch:
      - file: Configure containerd
      - pkg: Install containerd
