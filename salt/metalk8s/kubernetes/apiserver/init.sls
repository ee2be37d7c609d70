{#- The Kubernetes API server, as a static Pod on the nodes of the master role. #}
{%- from 'metalk8s/macros.jinja' import static_pod with context %}

include:
  - metalk8s.kubernetes.kubelet
{{ static_pod('kube-apiserver', 'salt://metalk8s/kubernetes/apiserver/files/manifest.yaml.j2') }}
