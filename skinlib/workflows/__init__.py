"""Workflows that combine trained models, training and evaluation: the ablation study, the post-hoc fits of
a trained classifier (`skinlib fit-*`: referral threshold, metadata fusion, novelty, augmented TTA, class
prior) and the colour-cast study. They sit above `skinlib.training` and `skinlib.evaluation` and below the
command line."""
