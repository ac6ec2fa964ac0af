"""The model lifecycle: labelled history, training, time-based evaluation, the registry,
serving (load + batch score) and drift."""
