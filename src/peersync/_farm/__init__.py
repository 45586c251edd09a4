"""The scale-out farm: servers kept in sync with each other over links, an
orchestration layer over :func:`peersync.connect` and :func:`peersync.sync`
(``config``: the TOML file; ``runner``: the links' workers). Its public face
is :mod:`peersync.farm`."""
