/**
 * Work queues: `queue add`, `queue stats`, `queue dead`, `queue redrive`.
 * @module
 */
import type { Command } from "commander";
import { createQueue, type JobOptions } from "../../queue/index.js";
import { type CliContext, jsonArg, nonNegativeInt, type Session, usage } from "../context.js";
import { table } from "../output.js";

/** Run `fn` with a producer/admin handle on a service's queue, stopped afterwards. */
async function withQueue(
  s: Session,
  service: string,
  name: string,
  fn: (q: ReturnType<typeof createQueue>) => Promise<void>,
): Promise<void> {
  const q = createQueue({ redis: s.redis, keys: s.keys, service, name, checkDurability: false });
  try {
    await fn(q);
  } finally {
    await q.stop();
  }
}

/** Add `queue` and its subcommands to `program`. */
export function addQueueCommands(program: Command, ctx: CliContext): void {
  const { paint, withSession } = ctx;
  const queue = program
    .command("queue")
    .description("work queues: add jobs, see stats, list and redrive dead letters");
  queue
    .command("add <service> [json]")
    .description("add a job to a service's queue")
    .option("--queue <name>", "queue name", "default")
    .option("--delay <ms>", "run no earlier than this many ms from now")
    .option("--attempts <n>", "tries before the job goes to dead letters")
    .option("--job-id <id>", "dedup id: a job with the same id is added once")
    .option("--priority <p>", "high or normal")
    .option("--count <n>", "add the same job this many times (load tests)", "1")
    .action(
      (
        service: string,
        json: string | undefined,
        o: {
          queue: string;
          delay?: string;
          attempts?: string;
          jobId?: string;
          priority?: string;
          count: string;
        },
      ) =>
        withSession(async (s) => {
          const body = jsonArg(json, "the job body");
          const opts: JobOptions = {};
          if (o.delay !== undefined) opts.delay = nonNegativeInt(o.delay, "--delay");
          if (o.attempts !== undefined) opts.attempts = nonNegativeInt(o.attempts, "--attempts");
          if (o.jobId !== undefined) opts.jobId = o.jobId;
          if (o.priority !== undefined) {
            if (o.priority !== "high" && o.priority !== "normal")
              throw usage("--priority must be high or normal");
            opts.priority = o.priority;
          }
          const count = nonNegativeInt(o.count, "--count");
          await withQueue(s, service, o.queue, async (q) => {
            const added = await q.addBulk(Array.from({ length: count }, () => ({ body, options: opts })));
            s.print(
              () =>
                added.length === 1
                  ? `${paint.green("✓")} job ${added[0]?.id} ${added[0]?.added ? "added" : paint.yellow("already queued (same job id)")}`
                  : `${paint.green("✓")} ${added.filter((a) => a.added).length} jobs added`,
              () => added,
            );
          });
        }),
    );
  queue
    .command("stats <service>")
    .description("pending, in-flight, delayed and dead jobs, and lifetime counters")
    .option("--queue <name>", "queue name", "default")
    .action((service: string, o: { queue: string }) =>
      withSession(async (s) => {
        await withQueue(s, service, o.queue, async (q) => {
          const st = await q.stats();
          s.print(
            () =>
              table(
                [
                  ["QUEUE", "PENDING", "IN-FLIGHT", "DELAYED", "DEAD", "PROCESSED", "FAILED", "CONSUMERS"],
                  [
                    `${service}/${o.queue}`,
                    String(st.pending),
                    String(st.inFlight),
                    String(st.delayed),
                    st.dead > 0 ? paint.red(String(st.dead)) : "0",
                    String(st.processed),
                    String(st.failed),
                    String(st.consumers),
                  ],
                ],
                paint,
              ),
            () => ({ service, queue: o.queue, ...st }),
          );
        });
      }),
    );
  queue
    .command("dead <service>")
    .description("list dead letters (newest first) with the reason each job failed")
    .option("--queue <name>", "queue name", "default")
    .option("--offset <n>", "skip this many", "0")
    .option("--count <n>", "show at most this many", "20")
    .action((service: string, o: { queue: string; offset: string; count: string }) =>
      withSession(async (s) => {
        await withQueue(s, service, o.queue, async (q) => {
          const dead = await q.dead({
            offset: nonNegativeInt(o.offset, "--offset"),
            count: nonNegativeInt(o.count, "--count"),
          });
          s.print(
            () =>
              dead.length === 0
                ? paint.dim("no dead letters")
                : table(
                    [
                      ["JOB", "ATTEMPTS", "FAILED", "REASON", "BODY"],
                      ...dead.map((d) => {
                        const b = d.raw ?? JSON.stringify(d.body);
                        return [
                          d.id,
                          String(d.attempts),
                          d.failedAt ? new Date(d.failedAt).toISOString() : "",
                          d.reason,
                          b.length > 60 ? `${b.slice(0, 57)}...` : b,
                        ];
                      }),
                    ],
                    paint,
                  ),
            () => dead,
          );
        });
      }),
    );
  queue
    .command("redrive <service>")
    .description("move dead letters back to the queue (all, --count of them, or --id ones)")
    .option("--queue <name>", "queue name", "default")
    .option("--count <n>", "redrive at most this many")
    .option("--id <ids...>", "redrive only these job ids")
    .action((service: string, o: { queue: string; count?: string; id?: string[] }) =>
      withSession(async (s) => {
        await withQueue(s, service, o.queue, async (q) => {
          const n = await q.redrive({
            ...(o.count !== undefined ? { count: nonNegativeInt(o.count, "--count") } : {}),
            ...(o.id ? { ids: o.id } : {}),
          });
          s.print(
            () => `${paint.green("✓")} ${n} job${n === 1 ? "" : "s"} back in ${service}/${o.queue}`,
            () => ({ service, queue: o.queue, redriven: n }),
          );
        });
      }),
    );
}
