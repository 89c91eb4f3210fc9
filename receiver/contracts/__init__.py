"""Contracts between the receiver and the parts around it, free of heavy dependencies:
the bundle schema posted to the platform (:mod:`receiver.contracts.bundle`), the ZeroMQ
framing of sample streams (:mod:`receiver.contracts.zmq_framing`) and the capture format
(:mod:`receiver.contracts.capture`). Nothing here imports numba or the receive chain."""
