{#- Yum repositories of the Bootstrap node's repository endpoint: the
    shipped repositories of the mounted ISO, gpgcheck on, with the keys the
    ISO ships beside them (packages/redhat/RPM-GPG-KEY-metalk8s-<repo>_<n>). #}
{%- from 'metalk8s/map.jinja' import versions, repo, saltenv_version with context %}
{%- set base = 'http://' ~ repo.host ~ ':' ~ repo.port ~ '/metalk8s-' ~ saltenv_version %}

{%- for name, r in versions.repositories | dictsort %}

Configure the {{ name }} repository:
  pkgrepo.managed:
    - name: metalk8s-{{ name }}
    - humanname: MetalK8s {{ saltenv_version }} {{ name }}
    - baseurl: {{ base }}/{{ name }}/
    - enabled: 1
    - gpgcheck: 1
    - repo_gpgcheck: {{ 1 if r.signed else 0 }}
    {%- if r.gpgkeys %}
    - gpgkey: "{% for k in r.gpgkeys %}{{ base }}/{{ k }}{% if not loop.last %} {% endif %}{% endfor %}"
    {%- endif %}
{%- endfor %}
