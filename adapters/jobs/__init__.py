"""Fine-tuning jobs: one process per job, its typed events, the view the page shows, and the manager that queues,
watches and cancels them."""
