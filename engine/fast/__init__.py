"""The compiled fast path: one strategy-independent loop over NumPy arrays (``loop``), the small
units compiled per strategy and per indicator definition that it calls by address (``rule_unit``,
``indicator_unit``, ``units``), and the runner that lays a sweep out and feeds them (``plan``,
``runner``). The README's "The fast path" explains the design and its figures."""
