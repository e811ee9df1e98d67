#!/bin/bash
# One distill generate rank per array task; every task takes the shards i % WORLD == RANK.
#   sbatch --array=0-15 docs/slurm-generate.sh RECIPE OUT WORLD
#SBATCH --job-name=distill-generate
#SBATCH --nodes=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=logs/%x-%A_%a.out
#SBATCH --requeue
set -euo pipefail
RECIPE=$1
OUT=$2
WORLD=$3
# A requeued or resubmitted task skips the shards it already wrote.
exec distill generate --recipe "$RECIPE" --out "$OUT" --rank "$SLURM_ARRAY_TASK_ID" --world-size "$WORLD"
