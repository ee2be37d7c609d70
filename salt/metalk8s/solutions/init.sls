{#- The Solutions of solutions.yaml (/etc/metalk8s/solutions.yaml, chapter
    12.1.2): each archive mounted at /srv/scality/<name>-<version>, its
    registry config rendered into the Bootstrap registry's includes; and the
    Solutions no longer listed unmounted with their config removed. #}
{%- from 'metalk8s/map.jinja' import metalk8s with context %}
{%- set confd = '/var/lib/metalk8s/repositories/conf.d' %}

{%- for s in metalk8s.solutions.configured %}
{%- set id = s.name ~ '-' ~ s.version %}

Mount Solution {{ id }}:
  mount.mounted:
    - name: /srv/scality/{{ id }}
    - device: {{ s.archive }}
    - fstype: iso9660
    - opts: ro,nofail
    - mkmnt: true
    - persist: true

Configure the registry for Solution {{ id }}:
  file.managed:
    - name: {{ confd }}/{{ id }}-registry-config.inc
    - source: /srv/scality/{{ id }}/registry-config.inc.j2
    - template: jinja
    - mode: '0644'
    - makedirs: true
    - context:
        repository: {{ id }}
        registry_root: /srv/scality/{{ id }}/images
    - require:
      - mount: Mount Solution {{ id }}
{%- endfor %}

{%- for s in metalk8s.solutions.removed %}
{%- set id = s.name ~ '-' ~ s.version %}

Remove the registry config of Solution {{ id }}:
  file.absent:
    - name: {{ confd }}/{{ id }}-registry-config.inc

Unmount Solution {{ id }}:
  mount.unmounted:
    - name: /srv/scality/{{ id }}
    - device: {{ s.archive }}
    - persist: true
    - require:
      - file: Remove the registry config of Solution {{ id }}
{%- endfor %}

Solutions are configured:
  test.succeed_without_changes:
    - name: {{ metalk8s.solutions.configured | length }} Solution(s) configured
