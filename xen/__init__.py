"""Xen: everything between the toolstack and the hypervisor.

* `xen.hypervisor`: the hypervisor interface (`Hypervisor`), its values, errors and the wire
  protocol of the simulated hypervisor, with its client `SimBackend`;
* `xen.xc`: the real backend, libxenctrl 4.17 through cffi;
* `xen.xenstore`: the xenstore wire protocol and the client (`XenstoreClient`, `XenstoreActor`);
* `xen.xenops`: the domain and device layer (pure plans, their executor, host actions);
* `xen.xenvm`: the VM monitors (one supervised actor per VM) and their DBus service;
* `xen.tree`: the Xen part of the dom0 tree (the hypervisor owner, the domain watcher, specs);
* `xen.sim`: the simulated Xen host (xenstored, hypervisor, backends, guests), never imported
  by production code.

See docs/architecture.md.
"""
