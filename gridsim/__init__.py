"""Grid simulators: what the substation receiver's CT inputs carry, and what the meters of a
low-voltage network report.

``gridsim.channel``   background of every CT input (fundamental, harmonics, noise, impulses,
                      interferers, grid-frequency wander) and the injection of hub bursts with
                      transformer low-pass and crosstalk; ``gridsim.background`` computes the
                      background, ``gridsim.burst_synth`` the bursts;
``gridsim.capture``   self-describing captures (WAV/RF64 + SigMF-style sidecar) and ground truth;
``gridsim.scenario``  scenario files (TOML) and their validation;
``gridsim.traffic``, ``gridsim.simulate``  who sends what when, and the capture driver;
``gridsim.trials``    sensitivity trials: one burst in white noise or the substation channel, through
                      the receive chain;
``gridsim.lv``        the low-voltage grid behind the meters (pandapower three-phase power flow on
                      transformer areas, meter noise, planted taps): the ground truth of the theft
                      analysis's evaluation. pandapower is imported only inside it, where a network is
                      built or solved: ``import gridsim`` does not need it.
"""
