{#- The MetalK8s tools image (images/metalk8s-utils: the static CLIs of the
    buildchain and installer), pulled from the Bootstrap registry so that
    `ctr run` finds it on the node without network. #}
{%- from 'metalk8s/map.jinja' import local_image with context %}

include:
  - metalk8s.kubernetes.kubelet

Pull the MetalK8s tools image:
  cmd.run:
    - name: crictl pull {{ local_image('metalk8s-utils') }}
    - unless: crictl inspecti {{ local_image('metalk8s-utils') }}
    - require:
      - pkg: Install cri-tools
      - service: Start and enable containerd
