/** This process's id: 1 in the driver, 2 and up in workers (Julia's `myid()`). */
let current = 1;

export function myid(): number {
  return current;
}

/** Set once by the worker main when it registers. */
export function setMyid(pid: number): void {
  current = pid;
}
