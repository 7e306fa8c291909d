"""DBus: the interface files, the framework that exports and calls them, and the clients.

* `rpc.idl`: the interface files of the OpenXT services (our own XML, the original names and
  signatures) and their model;
* `rpc.dbus`: connections, exported objects with dispatch into actors, properties, signals,
  the supervised private dbus-daemon, caller identity;
* `rpc.xec`: the ``xec`` and ``xec-vm`` command-line clients.

See docs/architecture.md, docs/idl.md, docs/dbus.md, docs/xec.md.
"""
