{#- The cluster DNS: CoreDNS, its Service on the cluster_dns address. #}
{%- from 'metalk8s/macros.jinja' import addon with context %}

include:
  - metalk8s.kubernetes.kubelet
{{ addon('coredns', 'salt://metalk8s/addons/coredns/files/coredns.yaml.j2') }}
