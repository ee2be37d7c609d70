# Copyright (C) 2018 Scality
# This program is free software; you can redistribute it and/or modify it
# under the terms of the Apache License, Version 2.0.
from sos.plugins import Plugin, RedHatPlugin


class Containerd(Plugin, RedHatPlugin):
    """containerd runtime state and container logs"""

    plugin_name = 'containerd'
    profiles = ('container',)
    packages = ('containerd',)

    def setup(self):
        self.add_copy_spec('/etc/containerd/')
        self.add_journal(units='containerd')
        self.add_cmd_output('crictl ps -a')
        self.add_cmd_output('crictl images')
        self.add_cmd_output('crictl pods')
