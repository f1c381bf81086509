# crbnet: simulation -> SVD basis -> CRB tables -> network training and dictionaries -> Monte-Carlo evaluation -> figures. Run: snakemake --cores all
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/crb.smk"
include: "rules/basis.smk"
include: "rules/train.smk"
include: "rules/match.smk"
include: "rules/evaluate.smk"
include: "rules/maps.smk"
include: "rules/acquisition.smk"
include: "rules/figures.smk"
include: "rules/design.smk"


onsuccess:
    write_report()


rule all:
    input:
        PLAN.targets(),
    default_target: True
