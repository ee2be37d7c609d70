{#- The monitoring stack of MetalK8s 2.0 : the Prometheus operator and what it runs, Grafana, the node and cluster exporters and the metrics adapter. #}
{%- from 'metalk8s/macros.jinja' import addon with context %}

include:
  - metalk8s.kubernetes.kubelet
{{ addon('prometheus-operator', 'salt://metalk8s/addons/monitoring/files/prometheus-operator.yaml.j2') }}
{{ addon('prometheus', 'salt://metalk8s/addons/monitoring/files/prometheus.yaml.j2') }}
{{ addon('alertmanager', 'salt://metalk8s/addons/monitoring/files/alertmanager.yaml.j2') }}
{{ addon('grafana', 'salt://metalk8s/addons/monitoring/files/grafana.yaml.j2') }}
{{ addon('node-exporter', 'salt://metalk8s/addons/monitoring/files/node-exporter.yaml.j2') }}
{{ addon('kube-state-metrics', 'salt://metalk8s/addons/monitoring/files/kube-state-metrics.yaml.j2') }}
{{ addon('prometheus-adapter', 'salt://metalk8s/addons/monitoring/files/prometheus-adapter.yaml.j2') }}
