{#- The etcd role (chapter 4.3.1): the etcd static Pod. #}
include:
  - metalk8s.kubernetes.etcd
