"""Kubernetes: render (pure, over templates/k8s) and apply; the only kubernetes import."""
