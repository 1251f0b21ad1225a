/**
 * The billing service: works through its `invoices` queue (jobs survive a crash of the worker: they
 * go back to the queue), tells orders when an invoice exists, and shows invoices through the gateway.
 *
 * - Queue `invoices` (produced by orders): each job issues an invoice, then calls `orders.invoiced`.
 * - HTTP (through the gateway) `GET /v1/invoices/:id`.
 *
 * Invoices are kept in memory (one billing instance in the demo). Run: `tsx examples/services/billing.ts`.
 */
import { demoService, report, run } from "./common.js";
import type { InvoiceJob } from "./orders.js";

interface Invoice extends InvoiceJob {
  id: string;
  issuedAt: string;
}

const svc = demoService("billing", { description: "issues invoices from the invoices queue" });
const issued = new Map<string, Invoice>();
let seq = 0;

// The worker starts once connected (in run's afterStart): claiming jobs needs Redis.
const startWorker = async () => {
  svc.queue<InvoiceJob>("invoices").process(
    async (job, meta) => {
      const invoice: Invoice = {
        ...job,
        id: `inv-${String(++seq).padStart(5, "0")}`,
        issuedAt: new Date().toISOString(),
      };
      issued.set(invoice.id, invoice);
      // Throwing here (orders unreachable) fails the attempt: the job is retried with backoff.
      await svc.call("orders", "invoiced", { orderId: job.orderId, invoiceId: invoice.id });
      svc.log.info("invoice issued", {
        invoice: invoice.id,
        order: job.orderId,
        amountCents: job.amountCents,
      });
      report("billing", "invoiced", { job: meta.id, invoice: invoice.id, order: job.orderId });
    },
    { concurrency: 4 },
  );
};

await svc.route("[get]/v1/invoices/:id", (req) => {
  const invoice = issued.get(req.params.id ?? "");
  return invoice
    ? { body: invoice }
    : { status: 404, body: { error: { code: "NOT_FOUND", message: "no such invoice" } } };
});

await run(svc, startWorker);
