{#- The ingress controller on every node, with its default backend. #}
{%- from 'metalk8s/macros.jinja' import addon with context %}

include:
  - metalk8s.kubernetes.kubelet
{{ addon('nginx-ingress', 'salt://metalk8s/addons/nginx-ingress/files/nginx-ingress.yaml.j2') }}
