"""Frame-level distillation (issue 13): a teacher's phone posteriors (hama's, :mod:`asr.distill.teacher`) stored
per utterance (:mod:`asr.distill.store`, made by tools/teacher_posteriors.py) and put on a phone student's frames
as a KL term beside CTC (:mod:`asr.distill.loss`; the trainer's ``distill`` config)."""
