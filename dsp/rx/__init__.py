"""The receive side, one stage per module, in the order a sample meets them: harmonic comb
(:mod:`dsp.rx.comb`), channelizer with the impulse blanker (:mod:`dsp.rx.channelizer`,
:mod:`dsp.rx.blanker`), preamble detection (:mod:`dsp.rx.detect`, :mod:`dsp.rx.cfar_gate`,
:mod:`dsp.rx.order`), tone excision (:mod:`dsp.rx.excise`), despreading and demodulation (the
package :mod:`dsp.rx.demod`, one module per step), all tied together per input by :mod:`dsp.rx.chain`."""
