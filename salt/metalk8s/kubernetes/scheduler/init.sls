{#- The Kubernetes scheduler, as a static Pod on the nodes of the master role. #}
{%- from 'metalk8s/macros.jinja' import static_pod with context %}

include:
  - metalk8s.kubernetes.kubelet
{{ static_pod('kube-scheduler', 'salt://metalk8s/kubernetes/scheduler/files/manifest.yaml.j2') }}
