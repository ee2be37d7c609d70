{#- The pinned kubelet, kubectl and cri-tools. #}
{%- from 'metalk8s/map.jinja' import versions, pkg_version with context %}

include:
  - metalk8s.repo
  - metalk8s.container-engine.containerd

{%- for name in ['kubelet', 'kubectl', 'cri-tools'] %}

Install {{ name }}:
  pkg.installed:
    - name: {{ name }}
    - version: "{{ pkg_version(name) }}"
    - fromrepo: metalk8s-{{ versions.packages[name].repo }}
    - require:
      - pkgrepo: Configure the {{ versions.packages[name].repo }} repository
{%- endfor %}

Configure crictl:
  file.managed:
    - name: /etc/crictl.yaml
    - contents: |
        runtime-endpoint: unix:///run/containerd/containerd.sock
    - mode: '0644'
    - require:
      - pkg: Install cri-tools

Enable kubelet:
  service.enabled:
    - name: kubelet
    - require:
      - pkg: Install kubelet
      - service: Start and enable containerd
