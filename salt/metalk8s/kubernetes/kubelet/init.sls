{#- The pinned kubelet, kubectl and cri-tools; the kubelet on containerd,
    running the static Pods of /etc/kubernetes/manifests. #}
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

Configure the kubelet:
  file.managed:
    - name: /var/lib/kubelet/config.yaml
    - source: salt://metalk8s/kubernetes/kubelet/files/kubelet-config.yaml.j2
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: true
    - require:
      - pkg: Install kubelet

Run the kubelet on containerd:
  file.managed:
    - name: /etc/sysconfig/kubelet
    - contents: |
        KUBELET_EXTRA_ARGS=--container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock
    - mode: '0644'
    - require:
      - pkg: Install kubelet

Enable kubelet:
  service.running:
    - name: kubelet
    - enable: true
    - require:
      - pkg: Install kubelet
      - service: Start and enable containerd
    - watch:
      - file: Configure the kubelet
      - file: Run the kubelet on containerd
