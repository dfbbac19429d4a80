"""``rule-based``: the profile's rules, evaluated in order; the first that matches decides."""

from __future__ import annotations

from typing import Mapping

from deba.control.scoring import ScoringStrategy, check_metrics

__all__ = ["RuleBasedStrategy"]


class RuleBasedStrategy(ScoringStrategy):
    """Maps the first matching rule's verdict to a score the scheduler acts on.

    ``grow`` scores 1, ``shrink`` 0, ``hold`` the middle of the profile's thresholds. A rule whose
    metric is not available is skipped; when none matches, ``rules_default`` applies.

    Example:
        >>> import deba
        >>> p = deba.load_profile("generic").replace(rules=[
        ...     {"metric": "loss_variation", "op": ">", "threshold": 0.2, "verdict": "shrink"}])
        >>> RuleBasedStrategy(p).score({"loss_variation": 0.5})
        0.0
    """

    name = "rule-based"

    def verdict(self, metrics: Mapping[str, float]) -> tuple[str, int | None]:
        """The verdict and the index of the rule that gave it (``None`` for the default)."""
        check_metrics(metrics)
        for i, rule in enumerate(self.profile.rules):
            if rule.metric in metrics and rule.matches(float(metrics[rule.metric])):
                return rule.verdict, i
        return self.profile.rules_default, None

    def score(self, metrics: Mapping[str, float]) -> float:
        verdict, _ = self.verdict(metrics)
        if verdict == "grow":
            return 1.0
        if verdict == "shrink":
            return 0.0
        return (self.profile.increase_above + self.profile.decrease_below) / 2.0
