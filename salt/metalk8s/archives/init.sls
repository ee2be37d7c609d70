{#- The MetalK8s ISOs named in bootstrap.yaml (archives:), each mounted
    persistently at /srv/scality/metalk8s-<version>, with its registry
    config rendered into the Bootstrap registry's includes as Solutions'
    are. The pillar lists them with the version read from each ISO's
    product.txt. #}
{%- from 'metalk8s/map.jinja' import metalk8s with context %}

{%- for archive in metalk8s.archives %}
{%- set mountpoint = '/srv/scality/metalk8s-' ~ archive.version %}

Mount MetalK8s {{ archive.version }}:
  mount.mounted:
    - name: {{ mountpoint }}
    - device: {{ archive.path }}
    - fstype: iso9660
    - opts: ro,nofail
    - mkmnt: true
    - persist: true

Configure the registry for MetalK8s {{ archive.version }}:
  file.managed:
    - name: /var/lib/metalk8s/repositories/conf.d/metalk8s-{{ archive.version }}-registry-config.inc
    - source: {{ mountpoint }}/registry-config.inc.j2
    - template: jinja
    - mode: '0644'
    - makedirs: true
    - context:
        repository: metalk8s-{{ archive.version }}
        registry_root: {{ mountpoint }}/images
    - require:
      - mount: Mount MetalK8s {{ archive.version }}
{%- else %}

No MetalK8s archive configured:
  test.show_notification:
    - text: bootstrap.yaml names no archives
{%- endfor %}
