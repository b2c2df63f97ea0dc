"""Knowledge distillation. Public API: edgekd.distill.api (prepare_teacher, distill, DistillOutcome).

- api: the two functions the pipeline calls; teacher_import: external teachers into the run directory.
- teachers: any teacher behind one `logits(x, ids)` interface; class mapping for subset students.
- losses: Hinton KD, DKD, DIST (each with optional logit standardisation), FitNets hints, pseudo-labels
  (nn.Modules, forward(student, teacher, targets)).
- objectives: what is optimised (supervised, distillation) and where teacher outputs come from.
- train: the loop (schedules, early stopping, checkpoints/resume, NaN detection, DDP, agreement with the teacher);
  device: device choice and mixed precision; ddp: torchrun launch.
- cache: teacher-output cache (sharded memory-mapped .npy, sha256-checked, optional top-k).
- augment: seeded per-sample augmentation and mixup (consistent views); flops / reporting: sizes, accuracy, the noise test.
"""
