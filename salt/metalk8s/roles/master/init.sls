{#- The master role (chapter 4.3.1): the Kubernetes control plane's static Pods. #}
include:
  - metalk8s.kubernetes.apiserver
  - metalk8s.kubernetes.controller-manager
  - metalk8s.kubernetes.scheduler
