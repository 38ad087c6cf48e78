// An intrusive doubly linked list: O(1) append and removal, no identity hashing, and a node that leaves it
// is referenced by nothing here. Used for the connections still reading a header and the requests whose
// audit entry is not written yet.

export interface Node<T> {
  prev: T | undefined;
  next: T | undefined;
}

export interface List<T> {
  head: T | undefined;
  tail: T | undefined;
}

export function append<T extends Node<T>>(list: List<T>, node: T): void {
  node.prev = list.tail;
  node.next = undefined;
  if (list.tail === undefined) list.head = node;
  else list.tail.next = node;
  list.tail = node;
}

/** Removes `node` if it is in `list` (a node without a predecessor is in it only as its head). */
export function remove<T extends Node<T>>(list: List<T>, node: T): void {
  const { prev, next } = node;
  if (prev === undefined) {
    if (list.head !== node) return;
    list.head = next;
  } else prev.next = next;
  if (next === undefined) list.tail = prev;
  else next.prev = prev;
  node.prev = undefined;
  node.next = undefined;
}
