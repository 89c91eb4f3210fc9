"""The convolutional code both ways: encoder and puncturing (:mod:`dsp.fec.conv`) and the soft
Viterbi decoder (:mod:`dsp.fec.viterbi`), K=7 r=1/2 (171, 133 octal)."""
