# Copyright (C) 2018 Scality
# This program is free software; you can redistribute it and/or modify it
# under the terms of the Apache License, Version 2.0.
from sos.plugins import Plugin, RedHatPlugin


class Metalk8s(Plugin, RedHatPlugin):
    """Metalk8s cluster state"""

    plugin_name = 'metalk8s'
    profiles = ('container',)
    files = ('/etc/kubernetes/admin.conf',)

    def setup(self):
        kube = 'kubectl --kubeconfig=/etc/kubernetes/admin.conf'
        for what in ('nodes', 'pods', 'services', 'events', 'deployments',
                     'daemonsets', 'statefulsets', 'persistentvolumes'):
            self.add_cmd_output(
                '{} get {} --all-namespaces -o wide'.format(kube, what))
        self.add_cmd_output('{} version'.format(kube))
