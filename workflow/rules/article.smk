# The article's figures (gradsweep.plotting.article, .diagnostics, .remedies): the activation functions behind the chain rule,
# and from the per-experiment aggregates the one_path panels, the nndl_demo speed of
# learning, Nielsen's norms at initialisation, the remedies heatmap, Ioffe & Szegedy's Fig. 1,
# the edge of chaos (trainability heat map, gradient slopes vs mean field) and every
# experiment's chain-rule diagnostics.
# article_outputs() lists those of the experiments this config has.


include: "article_common.smk"


rule plot_activations:
    input:
        code=script_code("plot_article.py"),
    output:
        report(
            f"{OUT}/figures/activations.png",
            caption="../report/activations.rst",
            category="Article",
            subcategory="Activation functions",
        ),
    log:
        f"{LOGS}/plot_article/activations.log",
    benchmark:
        f"{OUT}/benchmarks/plot_activations.tsv"
    conda:
        "../envs/gradsweep.yaml"
    script:
        "../scripts/plot_article.py"


rule plot_one_path:
    input:
        **experiment_tables("one_path"),
        code=script_code("plot_article.py"),
    output:
        layers=report(
            f"{OUT}/figures/one_path/layers.png",
            caption="../report/one_path_layers.rst",
            category="Experiments",
            subcategory="one_path",
        ),
    log:
        f"{LOGS}/plot_article/one_path.log",
    benchmark:
        f"{OUT}/benchmarks/plot_one_path.tsv"
    conda:
        "../envs/gradsweep.yaml"
    params:
        experiment="one_path",
    script:
        "../scripts/plot_article.py"


rule plot_nndl_demo:
    input:
        **experiment_tables("nndl_demo"),
        code=script_code("plot_article.py"),
    output:
        speed=report(
            f"{OUT}/figures/nndl_demo/speed.png",
            caption="../report/nndl_demo_speed.rst",
            category="Experiments",
            subcategory="nndl_demo",
        ),
    log:
        f"{LOGS}/plot_article/nndl_demo.log",
    benchmark:
        f"{OUT}/benchmarks/plot_nndl_demo.tsv"
    conda:
        "../envs/gradsweep.yaml"
    params:
        experiment="nndl_demo",
    script:
        "../scripts/plot_article.py"


rule plot_nielsen_init:
    input:
        **experiment_tables("nielsen_init"),
        code=script_code("plot_article.py"),
    output:
        init_norms=report(
            f"{OUT}/figures/nielsen_init/init_norms.png",
            caption="../report/nielsen_init_norms.rst",
            category="Experiments",
            subcategory="nielsen_init",
        ),
        speed=report(
            f"{OUT}/figures/nielsen_init/speed.png",
            caption="../report/nielsen_init_speed.rst",
            category="Experiments",
            subcategory="nielsen_init",
        ),
    log:
        f"{LOGS}/plot_article/nielsen_init.log",
    benchmark:
        f"{OUT}/benchmarks/plot_nielsen_init.tsv"
    conda:
        "../envs/gradsweep.yaml"
    params:
        experiment="nielsen_init",
        # evaluated only when the job is planned: configs without nielsen_init still parse
        reference=lambda wildcards: config["experiments"]["nielsen_init"].get(
            "reference"
        ),
    script:
        "../scripts/plot_article.py"


rule plot_remedies:
    input:
        **experiment_tables("remedies"),
        code=script_code("plot_article.py"),
    output:
        remedies=report(
            f"{OUT}/figures/remedies/remedies.png",
            caption="../report/remedies.rst",
            category="Experiments",
            subcategory="remedies",
        ),
    log:
        f"{LOGS}/plot_article/remedies.log",
    benchmark:
        f"{OUT}/benchmarks/plot_remedies.tsv"
    conda:
        "../envs/gradsweep.yaml"
    params:
        experiment="remedies",
    script:
        "../scripts/plot_article.py"


rule plot_batch_norm_sigmoid:
    input:
        **experiment_tables("batch_norm_sigmoid"),
        code=script_code("plot_article.py"),
    output:
        bn_distribution=report(
            f"{OUT}/figures/batch_norm_sigmoid/bn_distribution.png",
            caption="../report/bn_distribution.rst",
            category="Experiments",
            subcategory="batch_norm_sigmoid",
        ),
    log:
        f"{LOGS}/plot_article/batch_norm_sigmoid.log",
    benchmark:
        f"{OUT}/benchmarks/plot_batch_norm_sigmoid.tsv"
    conda:
        "../envs/gradsweep.yaml"
    params:
        experiment="batch_norm_sigmoid",
    script:
        "../scripts/plot_article.py"


rule plot_edge_of_chaos:
    input:
        **experiment_tables("edge_of_chaos"),
        code=script_code("plot_article.py"),
    output:
        trainability=report(
            f"{OUT}/figures/edge_of_chaos/trainability.png",
            caption="../report/edge_of_chaos_trainability.rst",
            category="Experiments",
            subcategory="edge_of_chaos",
        ),
        slopes=report(
            f"{OUT}/figures/edge_of_chaos/slopes.png",
            caption="../report/edge_of_chaos_slopes.rst",
            category="Experiments",
            subcategory="edge_of_chaos",
        ),
    log:
        f"{LOGS}/plot_article/edge_of_chaos.log",
    benchmark:
        f"{OUT}/benchmarks/plot_edge_of_chaos.tsv"
    conda:
        "../envs/gradsweep.yaml"
    params:
        experiment="edge_of_chaos",
    script:
        "../scripts/plot_article.py"


rule plot_diagnostics:
    input:
        unpack(lambda wildcards: experiment_tables(wildcards.experiment)),
        code=script_code("plot_article.py"),
    output:
        diagnostics=report(
            f"{OUT}/figures/{{experiment}}/diagnostics.png",
            caption="../report/diagnostics.rst",
            category="Experiments",
            subcategory="{experiment}",
        ),
    log:
        f"{LOGS}/plot_article/diagnostics/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/plot_diagnostics/{{experiment}}.tsv"
    conda:
        "../envs/gradsweep.yaml"
    params:
        experiment=lambda wildcards: wildcards.experiment,
    script:
        "../scripts/plot_article.py"
