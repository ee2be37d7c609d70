{#- The Bootstrap node (chapter 3): it serves the ISO's repositories and
    registry, keeps the MetalK8s tools image, and deploys the cluster's
    addons with kubectl. #}
include:
  - metalk8s.repo.deployed
  - metalk8s.utils
  - metalk8s.addons.kube-proxy
  - metalk8s.addons.coredns
  - metalk8s.addons.calico
  - metalk8s.addons.nginx-ingress
  - metalk8s.addons.monitoring
