{#- The Pod network: calico-node on every node and calico-kube-controllers. #}
{%- from 'metalk8s/macros.jinja' import addon with context %}

include:
  - metalk8s.kubernetes.kubelet
{{ addon('calico', 'salt://metalk8s/addons/calico/files/calico.yaml.j2') }}
