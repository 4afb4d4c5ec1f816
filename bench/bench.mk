# Benchmarks (included from the Makefile). Each Kafka-using target brings the local broker up
# and down like bench-bus; the exit code is the benchmark's. Figures go to bench/results/.
#   make bench            the whole pipeline on Kafka (four stage processes) into a sink MX
#   make bench-compare    the same load through Postline on the embedded bus, Postfix and
#                         Postfix + OpenDKIM too, in the same run, 1 KB and 50 KB, with ratios
#   make bench-profile    py-spy every stage and JFR the broker during make bench (STAGE=signer:
#                         that one only; STAGE=kafka the broker; STAGE=run postline run on the
#                         embedded bus, with its stage processes); summary texts
#   make bench-lanes      transactional latency to one limited domain, alone and behind a
#                         bulk backlog (the priority lanes)
#   make bench-scaleout   two signers and two deliverers sharing the work (consumer groups)
#   make bench-ingest | bench-signer | bench-deliverer | bench-corpus   one stage at a time
#                         (bench-ingest: SMTP by default; BENCH_ARGS="--protocol http" the
#                         HTTP sending API, "--protocol both" the two side by side)
#   make bench-memory     peak RSS under large and hostile input (embedded bus, no broker)
#   make bench-limits     what one limit check costs, on Redis and in process
#   make bench-rspamd     rspamd's CPU per scanned message and messages/s (local rspamd)
#   make bench-webhooks   events/s one webhooks process acknowledges to an HTTPS receiver,
#                         and the event-to-acknowledgement p50/p99 (Kafka)
#   make bench-store      the reporting store's query p50/p99 at 10 million events (PostgreSQL)
#   make bench-store-write  the reporting store's write rate (events/s into PostgreSQL)
# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--messages 10000 --rounds 3"
BENCH_ARGS ?=

.PHONY: bench bench-compare bench-lanes bench-scaleout bench-profile bench-ingest bench-signer bench-deliverer \
        bench-corpus bench-memory bench-limits bench-rspamd bench-webhooks bench-store \
        bench-store-write

bench: venv
	$(KAFKA) up
	status=0; $(BIN)/python bench/bench_pipeline.py --kafka $(POSTLINE_TEST_KAFKA) $(BENCH_ARGS) \
	    || status=$$?; $(KAFKA) down; exit $$status

# Transactional accept-to-delivered p50/p99 alone and behind LANES_BACKLOG bulk messages.
LANES_BACKLOG ?= 1500
bench-lanes: venv
	$(KAFKA) up
	status=0; $(BIN)/python bench/bench_pipeline.py --kafka $(POSTLINE_TEST_KAFKA) \
	    --bulk-backlog $(LANES_BACKLOG) --messages 100 --sessions 2 --pause 0.4 \
	    --output bench/results/lanes.json $(BENCH_ARGS) || status=$$?; $(KAFKA) down; exit $$status

# Installs Debian's postfix and opendkim packages when missing (root, apt) and purges them
# again afterwards. 3 rounds by default; figures in bench/results/compare.json.
bench-compare: venv
	$(KAFKA) up
	status=0; $(BIN)/python bench/bench_pipeline.py --kafka $(POSTLINE_TEST_KAFKA) --compare \
	    $(BENCH_ARGS) || status=$$?; \
	$(KAFKA) down; exit $$status

bench-scaleout: venv
	$(KAFKA) up
	status=0; $(BIN)/python bench/bench_scaleout.py --kafka $(POSTLINE_TEST_KAFKA) $(BENCH_ARGS) \
	    || status=$$?; $(KAFKA) down; exit $$status

bench-ingest: venv
	$(KAFKA) up
	status=0; $(BIN)/python bench/bench_ingest.py --kafka $(POSTLINE_TEST_KAFKA) $(BENCH_ARGS) \
	    || status=$$?; $(KAFKA) down; exit $$status

bench-signer: venv
	$(BIN)/python bench/bench_signer.py $(BENCH_ARGS)

bench-deliverer: venv
	$(KAFKA) up
	status=0; $(BIN)/python bench/bench_deliverer.py $(BENCH_ARGS) \
	    && $(BIN)/python bench/bench_deliverer.py --kafka $(POSTLINE_TEST_KAFKA) $(BENCH_ARGS) \
	    || status=$$?; $(KAFKA) down; exit $$status

bench-corpus: venv
	$(BIN)/python bench/corpus_bounces.py $(BENCH_ARGS)

# Profiles over the last round of `make bench`: py-spy on each stage (the signer's workers too)
# and the broker JVM with JFR and per-thread CPU from jcmd (bench/jfr.py; the JDK running the
# broker provides jcmd and jfr). STAGE=ingest|signer|deliverer|bouncer|kafka profiles only
# that one. Installs py-spy, a benchmark tool only, into the project's venv.
# Summaries in bench/results/profile-<name>.txt; docs/performance.md reads them.
STAGE ?= all
bench-profile: venv
	$(BIN)/pip install --quiet py-spy
	$(KAFKA) up
	status=0; PY_SPY=$(BIN)/py-spy $(BIN)/python bench/bench_pipeline.py --kafka $(POSTLINE_TEST_KAFKA) \
	    --profile $(STAGE) $(if $(filter run,$(STAGE)),--bus embedded) $(BENCH_ARGS) \
	    || status=$$?; $(KAFKA) down; exit $$status

# Peak RSS of ingest, `postline run` and the bouncer under large and hostile input (issue 11):
# fresh processes on the embedded bus (no broker needed), stopped by PID; bench/results/memory.json.
bench-memory: venv
	$(BIN)/python bench/bench_memory.py $(BENCH_ARGS)

# Checks/s and p50/p99 of one limit check (shared/limits) on the local Redis and in process;
# Redis is started and stopped like Kafka above. Figures in bench/results/limits.json.
# One webhooks stage, N events for a few tenants on postline.events, a local aiohttp HTTPS
# receiver: events/s acknowledged and p50/p99 event-to-ack. bench/results/webhooks.json.
bench-webhooks: venv
	$(KAFKA) up
	status=0; $(BIN)/python bench/bench_webhooks.py --kafka $(POSTLINE_TEST_KAFKA) $(BENCH_ARGS) \
	    || status=$$?; $(KAFKA) down; exit $$status

bench-limits: venv
	$(REDIS) up
	status=0; $(BIN)/python bench/bench_limits.py --redis $(POSTLINE_TEST_REDIS) $(BENCH_ARGS) \
	    || status=$$?; $(REDIS) down; exit $$status

# rspamd's CPU ms per scanned message (its processes' /proc times) and messages/s through
# /checkv2, on the local offline rspamd (started and stopped here). bench/results/rspamd.json.
bench-rspamd: venv
	$(RSPAMD) up
	status=0; $(BIN)/python bench/rspamd_cpu.py --url $(POSTLINE_TEST_RSPAMD) $(BENCH_ARGS) \
	    || status=$$?; $(RSPAMD) down; exit $$status

# The reporting store's queries at scale: 10 million generated events in the local PostgreSQL
# (started and stopped here), each query's p50/p99 and plan. bench/results/store_queries.json.
# BENCH_ARGS="--events 1000000" for a quick run, "--reuse" to query the last data again.
bench-store: venv
	$(POSTGRES) up
	status=0; $(BIN)/python bench/store_queries.py --dsn $(POSTLINE_TEST_POSTGRES) $(BENCH_ARGS) \
	    || status=$$?; $(POSTGRES) down; exit $$status

# The store's write rate: events/s the writer puts into PostgreSQL at each batch size, Python's
# CPU beside the wall time. bench/results/store_write.json.
bench-store-write: venv
	$(POSTGRES) up
	status=0; $(BIN)/python bench/store_write.py --dsn $(POSTLINE_TEST_POSTGRES) $(BENCH_ARGS) \
	    || status=$$?; $(POSTGRES) down; exit $$status
