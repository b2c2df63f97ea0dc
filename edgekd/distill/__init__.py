"""Knowledge distillation. Public API: edgekd.distill.api (prepare_teacher, distill, DistillOutcome).

- api: the two functions the pipeline calls; teacher_import: external teachers into the run directory.
- teachers: any teacher behind one `logits(x, ids)` interface; class mapping for subset students.
- losses: Hinton KD, DKD, FitNets hints, pseudo-labels (nn.Modules, forward(student, teacher, targets)).
- objectives: what is optimised (supervised, distillation) and where teacher outputs come from.
- train: the loop (schedules, early stopping, checkpoints/resume, NaN detection, DDP); ddp: torchrun launch.
- cache: teacher-output cache (sharded memory-mapped .npy, sha256-checked, optional top-k).
- augment: seeded per-sample augmentation; flops / reporting: sizes, accuracy, the noise test.
"""
