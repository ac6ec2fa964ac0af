"""The blue/green colours on Kubernetes: what `swap-model` drives on the aws target.

A swap (fraudctl.model.swap) asks for the idle colour to start with the new models, then for
the old one to stop. Here, starting a colour applies its consumer and API Deployments with
their replicas and models, waits until both have rolled out (ready = models loaded), and then
points the API Service at it; stopping scales the colour's Deployments to zero and waits for
its pods to exit, which they do after the batch in hand (SIGTERM, 90 s of grace).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fraudctl.k8s import rollout
from fraudctl.k8s.cluster import Cluster
from fraudctl.k8s.render import ColourPlan, Manifest, RenderContext, render
from fraudctl.model.deployment import COLOURS


class KubernetesWorkloads:
    def __init__(self, cluster: Cluster, context: RenderContext, *, replicas: int,
                 timeout_s: float = 600) -> None:
        self.cluster = cluster
        self.context = context
        self.replicas = replicas
        self.timeout_s = timeout_s

    @property
    def namespace(self) -> str:
        return self.context.namespace

    def _render(self, plans: dict[str, ColourPlan], active: str) -> dict[str, Manifest]:
        context = dataclasses.replace(self.context, active_colour=active,
                                      colours=tuple(plans[c] for c in COLOURS))
        return {f"{m.kind}/{m.name}": m for m in render(context)}

    def _plans(self) -> dict[str, ColourPlan]:
        return {plan.name: plan for plan in self.context.colours}

    def _apply(self, objects: dict[str, Manifest], keys: list[str]) -> None:
        rollout.apply_all(self.cluster, [objects[k] for k in keys if k in objects])

    def start_colour(self, colour: str, spec: Any) -> dict[str, int]:
        plans = self._plans()
        plans[colour] = ColourPlan(colour, spec, self.replicas, 1)
        objects = self._render(plans, self.context.active_colour)
        deployments = [f"consumer-{colour}", f"api-{colour}"]
        self._apply(objects, [f"Deployment/{name}" for name in deployments])
        rollout.wait_ready(self.cluster, self.namespace, deployments,
                           timeout_s=self.timeout_s)
        # Ready: the API's address now reaches this colour, and KEDA scales its consumers.
        taken_over = self._render(plans, colour)
        self._apply(taken_over, ["Service/fraudctl-api", f"ScaledObject/consumer-{colour}"])
        self.context = dataclasses.replace(self.context, active_colour=colour,
                                           colours=tuple(plans[c] for c in COLOURS))
        return {}

    def stop_colour(self, colour: str) -> None:
        plans = self._plans()
        current = plans[colour]
        plans[colour] = ColourPlan(colour, current.spec, 0, 0)   # same models: no restart
        objects = self._render(plans, self.context.active_colour)
        deployments = [f"consumer-{colour}", f"api-{colour}"]
        self._apply(objects, [f"Deployment/{name}" for name in deployments])
        if self.cluster.get("ScaledObject", f"consumer-{colour}", self.namespace) is not None:
            self.cluster.delete("ScaledObject", f"consumer-{colour}", self.namespace)
        rollout.wait_ready(self.cluster, self.namespace, deployments,
                           timeout_s=self.timeout_s)
        self.context = dataclasses.replace(self.context,
                                           colours=tuple(plans[c] for c in COLOURS))

    def running_colours(self) -> set[str]:
        running = set()
        for colour in COLOURS:
            found = self.cluster.get("Deployment", f"consumer-{colour}", self.namespace)
            # (no replicas field: KEDA owns the count, and it keeps at least one)
            if found is not None and int(found["spec"].get("replicas", 1)) > 0:
                running.add(colour)
        return running
