"""Training pipeline for vbg's person segmenter: `python -m train check|fit|evaluate|export`.

Runs from a checkout (never installed as a package). It builds on the runtime package `vbg`
for the model card, the preprocessing and the metrics, so a trained model is measured and
run exactly as the runtime will run it.
"""
