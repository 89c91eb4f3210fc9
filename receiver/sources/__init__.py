"""Sample sources of the receiver: capture replay, ZeroMQ streams and JACK behind one interface.

Every source is an iterable of :class:`SampleBlock` (rows = sample instants, columns = inputs,
float64 in physical units: per-unit current) with a :class:`SourceStats` of counters,
``n_channels``, ``sample_rate_hz``, ``close()`` and context-manager support. The formats they
read are contracts kept elsewhere: the capture in :mod:`receiver.contracts.capture`
(``docs/capture-format.md``), the wire in :mod:`receiver.contracts.zmq_framing`
(``docs/zmq-framing.md``).

Modules:

* ``base``: :class:`SampleBlock`, :class:`SourceStats`, the :class:`Source` protocol, and what
  the sources share (the rate-limited ``gla.ingest`` logger, the clipping counters).
* ``capture``: :class:`CaptureSource` replays a capture (audio file + sidecar), as fast as it
  can be read or paced in real time; :class:`CaptureTruncatedError` for a cut-short file.
* ``messages``: one received message parsed (GLA framing or GNU Radio raw items) into a
  ``Message``: ordering key, first sample, raw samples, shape, time, session, flags.
* ``assembler``: :class:`StreamAssembler`, ZeroMQ messages in (as received), in-order blocks
  out; no I/O, no threads. All the stream rules below live here, with ``aside`` (messages held
  until a new session or shape is confirmed) and ``placement`` (a message's samples put at
  their position: gap fill, trim, decode, counters).
* ``gr_input``: :class:`GrParser`, the stateful parse of GNU Radio raw items: the item count,
  the ``rx_time`` tags that date the stream (each re-anchors it; one that disagrees with the
  item count is a discontinuity), and a sink whose vector length looks like 1 or whose
  ``pass_tags`` differs from the configuration, refused with one line and counted
  (``vlen_mismatch``, ``pass_tags_mismatch``).
* ``forgery``: forged and stray messages against a real stream, to check a receiver with them
  (``receiver.forged_check`` runs it end to end, down to the bundles).
* ``zmq_source``: :class:`ZmqSource`, the PULL or SUB socket loop around a StreamAssembler, for
  the GLA framing or GNU Radio gr-zeromq ``push_sink``/``pub_sink`` raw items (optionally with
  the ``pass_tags`` header). Not named ``zmq`` so that ``import zmq`` stays pyzmq.
* ``jack_source``: :class:`JackSource`, an audio interface or DAQ read through a JACK server
  (one input port per input; gaps, clipping and NaN counted by the ZeroMQ source's delivery
  step, ``placement``). Not named ``jack`` so that ``import jack`` stays JACK-Client.
* ``sender``: :class:`CaptureSender` / :func:`stream_capture` replay a capture over ZeroMQ
  (PUSH or PUB), with optional fault injection; used by the tests, the latency benchmark and
  to check a deployment.

How a ZeroMQ message becomes a SampleBlock:

1. :class:`ZmqSource` polls its socket and hands each message (its frames: data, or topic +
   data) to :meth:`StreamAssembler.feed`.
2. The assembler parses it (``messages``). GLA:
   :func:`~receiver.contracts.zmq_framing.unpack_message` gives the header (stream id, sequence
   number, first sample, rate, channels, sample type, full scale, time, flags, session) and a
   view of the raw samples. GNU Radio raw: the items, reshaped to ``n_channels``, positioned by
   the ``pass_tags`` header's offset or else by counting the items received.
3. A message against the configuration (another configured stream id, a pinned channel count
   or rate) is dropped. One that does not continue the followed stream (another session,
   shape or stream id, or a position going back that is not a copy of what was delivered) is
   held aside (:mod:`receiver.sources.aside`) and adopted, as a new segment, only when
   ``adopt_after`` (3) of its kind arrive in a row; the followed stream goes on untouched. An
   end-of-stream before it (of another session, shape or stream id) or a DISCONTINUITY flag
   re-anchors the stream at once. END_OF_STREAM and DISCONTINUITY are honoured in sequence (a
   flagged message ahead of the stream waits for the ones before it); after an end the
   position is kept, and a message that continues the same session, or the end's own sequence
   number again with other content, shows the end was forged: the stream goes on. A rejected
   message consumes no state (sequence number, position, session): only its counter.
4. Ordering, by sequence number (GLA) or first sample (GNU Radio): a message behind the stream
   is a duplicate or late; one ahead is held (up to ``reorder_window`` messages) until the
   missing ones come or are given up.
5. Delivery at its sample position: a gap before it becomes a NaN block (``gap_fill``) or, if
   longer than ``max_gap_fill_s``, a discontinuity; an overlap is trimmed; the raw samples are
   decoded to float64 physical units (:func:`~receiver.contracts.zmq_framing.decode_samples`),
   NaN/inf and clipped values counted, and the :class:`SampleBlock` gets the message's stream
   id, first sample, rate, the UTC time of row 0 (from the header's time) and the
   ``discontinuity`` flag.
6. When no message came for ``rcv_timeout_ms``, and at the end, held messages are delivered.

Stream faults never raise and never shift samples; each moves a counter of :class:`SourceStats`:

========================  =================================================================
fault                     handling
========================  =================================================================
malformed message         skipped, ``bad_frames``; GNU Radio raw without tags: also a
                          discontinuity (``gaps``, ``resyncs``), its loss cannot be measured
tag header vs pass_tags   a GNU Radio message with a tag header while ``pass_tags`` is off, or
                          without one while it is on: skipped, ``bad_frames`` and
                          ``pass_tags_mismatch``; the assembler's ``tags_mismatch`` says which
                          (the service's /healthz answers 503 with it)
gap (samples missing)     NaN rows up to ``max_gap_fill_s`` (``gaps``, ``gap_samples``; the
                          comb bridges NaN, sample indices stay exact); a longer gap: the
                          stream continues at the new position (``gaps``, ``gap_samples``,
                          ``resyncs``) and the next block has ``discontinuity=True``
duplicate                 dropped, ``duplicates`` (same sequence number, or a sample range
                          already delivered; a partial overlap is trimmed)
reordered                 held in a buffer of ``reorder_window`` messages and delivered in
                          order (``reordered``); arriving after its gap was given up:
                          dropped, ``late_dropped``
changed shape             (channel count, sample type or sample rate) held aside; after
                          ``adopt_after`` consecutive messages of the new shape it is adopted
                          from its first (``channel_count_changes``, ``resyncs``,
                          ``discontinuity``); never confirmed, or against the ``n_channels`` /
                          ``sample_rate_hz`` the source was given: ``wrong_shape_dropped``
sender restart            (new session id, indices going back that are not duplicates) held
                          aside and adopted like a shape; never confirmed:
                          ``unconfirmed_dropped``. DISCONTINUITY flag: ``resyncs`` at once
NaN / inf samples         passed through, ``nonfinite`` (the receive chain replaces them)
clipping                  counted in ``clipped``: integer samples at either end of their
                          range, floats with ``|x| >= clip level`` (default: full scale)
========================  =================================================================

Logs go to the ``gla.ingest`` logger with ``extra={"event": ..., "stream": ...}``, at most one
line per kind of event and stream every ``log_interval_s`` (the rest are counted in the next
line).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from receiver.sources.assembler import StreamAssembler
    from receiver.sources.base import SampleBlock, Source, SourceError, SourceStats
    from receiver.sources.capture import CaptureSource, CaptureTruncatedError
    from receiver.sources.jack_source import JackSource
    from receiver.sources.sender import CaptureSender, SendReport, stream_capture
    from receiver.sources.zmq_source import ZmqSource

#: Where each name lives: imported on first use (PEP 562), so that a replay, which reads a
#: capture, does not import pyzmq and the stream machinery (~45 ms of start-up) and the service
#: does not import the capture reader's.
_WHERE = {
    "StreamAssembler": "assembler",
    "SampleBlock": "base",
    "Source": "base",
    "SourceStats": "base",
    "SourceError": "base",
    "CaptureSource": "capture",
    "CaptureTruncatedError": "capture",
    "CaptureSender": "sender",
    "SendReport": "sender",
    "stream_capture": "sender",
    "ZmqSource": "zmq_source",
    "JackSource": "jack_source",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "SampleBlock",
    "SourceStats",
    "Source",
    "SourceError",
    "CaptureSource",
    "CaptureTruncatedError",
    "ZmqSource",
    "JackSource",
    "StreamAssembler",
    "CaptureSender",
    "SendReport",
    "stream_capture",
]
