"""The air interface as a contract: what a Remote Hub sends, independent of how it is sent.

Channel plan and constants (:mod:`dsp.air.params`), CRC-16 (:mod:`dsp.air.crc`), the frame
codec (:mod:`dsp.air.frame`), message kinds with their packing and AES-CCM sealing
(:mod:`dsp.air.messages`), chip codes (:mod:`dsp.air.codes`) and the interleaver's permutation
(:mod:`dsp.air.interleave`). The normative text is docs/air-interface.md.

Everything here needs numpy and cryptography only: no numba, so the platform can import it.
"""
