"""The gate's program solved by the structured interior-point method
(:mod:`riskopt.optimizer.ipm` with :class:`~riskopt.optimizer.structured.StructuredKkt`),
read back as Clarabel's answer is, so that the attribution reads the same multipliers."""

from __future__ import annotations

import time

from riskopt.optimizer import ipm
from riskopt.optimizer.assembly import Assembler
from riskopt.optimizer.clarabel_program import _solved
from riskopt.optimizer.structure import Solved, SolverFailed, Values
from riskopt.optimizer.structured import StructuredKkt, Unstructured

NAME = "STRUCTURED"


class StructuredProgram(Assembler):
    """The program assembled as for Clarabel and solved by the structured method; a
    program it cannot take (power cones, too many coupling rows) or a solve that does
    not converge raises :class:`SolverFailed`, and the chain goes on to Clarabel."""

    def solve(self, v: Values, *, max_iters: int) -> Solved:
        start = time.perf_counter()
        data = self.assemble(v)
        if data.power:
            raise Unstructured("power cones (market impact) are not in its structure")
        zero, nonneg, soc = data.cones
        problem = ipm.Problem.of(
            data.P, data.q, data.A, data.b, ipm.Cones(zero, nonneg, (soc,) if soc else ())
        )
        kkt = StructuredKkt(problem)
        assembled = time.perf_counter()
        answer = ipm.solve(problem, kkt, max_iters=max_iters)
        if answer.status not in ("Solved", "AlmostSolved"):
            raise SolverFailed(f"{NAME} returned status {answer.status}")
        return _solved(
            data,
            answer,
            solve_seconds=time.perf_counter() - assembled,
            setup_seconds=assembled - start,
            solver=NAME,
            residual=answer.worst,
        )
