"""Serving a trained run over HTTP: ``distiltune serve`` (:mod:`.server`) and :class:`.client.Client`."""
