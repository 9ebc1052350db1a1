# -*- coding: utf-8 -*-
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
"""The verification-time curve: time of the `verify` step against the number of checks."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def linear_fit(points):
    """Least-squares line through points [(x, y)]: (intercept, slope, r2), r2 the coefficient
    of determination (1.0 when every point is on the line). None for fewer than two distinct x.
    Units are the points' (here: checks, seconds -> seconds, seconds per check)."""
    points = list(points)
    n = len(points)
    if n < 2 or len(set(x for x, _y in points)) < 2:
        return None
    mx = sum(x for x, _y in points) / n
    my = sum(y for _x, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _y in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for _x, y in points)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in points)
    r2 = 1.0 if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return intercept, slope, r2
