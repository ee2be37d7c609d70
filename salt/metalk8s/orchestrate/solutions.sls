{#- Orchestration run by the Salt Master: applies metalk8s.solutions on the
    Bootstrap node, then reloads the registry so it serves the new
    includes. Only core state modules: the master's salt CLI through cmd. #}
{%- from 'metalk8s/map.jinja' import metalk8s, saltenv_version with context %}
{%- set bootstrap = salt['pillar.get']('bootstrap_id', grains['id']) %}

Apply the Solutions configuration on {{ bootstrap }}:
  cmd.run:
    - name: salt {{ bootstrap }} state.sls metalk8s.solutions saltenv=metalk8s-{{ saltenv_version }}

Reload the Bootstrap registry:
  cmd.run:
    - name: salt {{ bootstrap }} cmd.run 'crictl ps -q --name {{ metalk8s.endpoints.registry.container }} | xargs -r -I{} crictl exec {} nginx -s reload'
    - onchanges:
      - cmd: Apply the Solutions configuration on {{ bootstrap }}
