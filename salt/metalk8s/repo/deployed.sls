{#- The Bootstrap node's repositories: nginx in a static Pod (the container
    the pillar names, `repositories`), serving the yum repositories and the
    registries of every mounted archive and Solution from their
    registry-config includes. #}
{%- from 'metalk8s/macros.jinja' import static_pod with context %}

include:
  - metalk8s.kubernetes.kubelet

Create the registry includes directory:
  file.directory:
    - name: /var/lib/metalk8s/repositories/conf.d
    - user: root
    - group: root
    - dir_mode: '0755'
    - makedirs: true
{{ static_pod('repositories', 'salt://metalk8s/repo/files/repositories.yaml.j2') }}
