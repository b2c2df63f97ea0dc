"""Knowledge distillation: models, losses, teachers, training."""
