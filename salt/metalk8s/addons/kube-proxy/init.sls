{#- kube-proxy on every node, as a DaemonSet. #}
{%- from 'metalk8s/macros.jinja' import addon with context %}

include:
  - metalk8s.kubernetes.kubelet
{{ addon('kube-proxy', 'salt://metalk8s/addons/kube-proxy/files/kube-proxy.yaml.j2') }}
