{#- The Kubernetes controller manager, as a static Pod on the nodes of the master role. #}
{%- from 'metalk8s/macros.jinja' import static_pod with context %}

include:
  - metalk8s.kubernetes.kubelet
{{ static_pod('kube-controller-manager', 'salt://metalk8s/kubernetes/controller-manager/files/manifest.yaml.j2') }}
