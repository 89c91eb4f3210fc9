"""Every stage says what it is: ``repr`` names its class, on one line (not ``<... object at 0x...>``),
fresh and after some samples have gone through."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.air import params as P
from dsp.fec.viterbi import ViterbiDecoder
from dsp.rx.blanker import ImpulseBlanker
from dsp.rx.chain import BasebandRing, InputChain
from dsp.rx.channelizer import Channelizer
from dsp.rx.comb import HarmonicComb
from receiver.grouping import Grouper, InputInfo
from receiver.pipeline import Pipeline, _Chains

PLAN = P.ChannelPlan.default()
X = np.random.default_rng(1).standard_normal(20000) + 100 * np.cos(2 * np.pi * 60.0 * np.arange(20000) / 48000.0)


def _stages():
    """(stage, a function that runs a little of a stream through it)."""
    comb, chan, chain = HarmonicComb(), Channelizer(PLAN), InputChain(PLAN, 4)
    blanker, ring, vit = ImpulseBlanker(3, 25, 0.8), BasebandRing(3, 100), ViterbiDecoder()
    chains = _Chains(PLAN, [0, 1], 48000.0)
    pipe = Pipeline(PLAN, 2, workers=0)
    grouper = Grouper(PLAN, [InputInfo(0, 0, 0, "A"), InputInfo(1, 0, 0, "B")], receiver_id="rx", substation_id="s")
    bb = np.ones((3, 300), np.complex64)

    def feed_pipe():
        pipe.feed(0, np.stack([X, X], axis=1))
        for o in pipe.outputs():
            grouper.add_output(o)

    return [
        (comb, lambda: comb.process(X)),
        (chan, lambda: chan.process(X)),
        (chain, lambda: chain.process(X)),
        (blanker, lambda: blanker.process(bb)),
        (ring, lambda: ring.append(bb)),
        (vit, lambda: vit.process(np.ones(200))),
        (chains, lambda: chains.run(0, 0, np.stack([X, X], axis=1))),
        (pipe, feed_pipe),
        (grouper, lambda: None),
        (chain.process(X), lambda: None),
    ]


@pytest.mark.parametrize("k", range(len(_stages())))
def test_every_stage_says_what_it_is_on_one_line(k):
    stage, run = _stages()[k]
    name = type(stage).__name__
    for _ in range(2):
        text = repr(stage)
        assert text.startswith(name + "(") and text.endswith(")") and "\n" not in text and " object at 0x" not in text
        run()
