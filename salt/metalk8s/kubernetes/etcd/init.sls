{#- etcd, the cluster's store, as a static Pod on the nodes of the etcd role. #}
{%- from 'metalk8s/macros.jinja' import static_pod with context %}

include:
  - metalk8s.kubernetes.kubelet
{{ static_pod('etcd', 'salt://metalk8s/kubernetes/etcd/files/manifest.yaml.j2') }}
