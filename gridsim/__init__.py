"""Grid simulator: what the substation receiver's CT inputs carry.

``gridsim.channel``   background of every CT input (fundamental, harmonics, noise, impulses,
                      interferers, grid-frequency wander) and the injection of hub bursts with
                      transformer low-pass and crosstalk;
``gridsim.capture``   self-describing captures (WAV/RF64 + SigMF-style sidecar) and ground truth;
``gridsim.scenario``  scenario files (TOML) and their validation;
``gridsim.traffic``, ``gridsim.simulate``  who sends what when, and the capture driver.
"""
