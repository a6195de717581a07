import { Background, Controls, Handle, Position, ReactFlow, type Connection, type Edge, type Node, type NodeProps } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useEffect, useState } from "react";
import { layout, type StepEdge, type StepNode } from "./workflow-graph.ts";

type StepData = { step: StepNode; status?: string; selected?: boolean };

function StepBox({ data }: NodeProps<Node<StepData>>) {
  const { step, status } = data;
  return (
    <div className={`step-node kind-${step.kind}${status ? ` status-${status.toLowerCase()}` : ""}`} data-step-id={step.id} data-status={status ?? ""}>
      <Handle type="target" position={Position.Top} />
      <strong>{step.id}</strong>
      <span className="step-uses">
        {step.kind !== "step" && <em className="step-kind">{step.kind}</em>} {step.uses}
      </span>
      {status && <span className="step-status">{status}</span>}
      <Handle type="source" position={Position.Bottom} />
    </div>
  );
}

const nodeTypes = { step: StepBox };

/**
 * The steps laid out by elkjs. With `onConnect`/`onDelete` it is editable:
 * dragging from one node's bottom to another's top adds a `needs`.
 */
export function WorkflowGraph({
  steps,
  edges,
  statuses = {},
  onConnect,
  onDeleteNodes,
  onSelect,
  selectedId = null,
}: {
  steps: StepNode[];
  edges: StepEdge[];
  statuses?: Record<string, string>;
  onConnect?: (from: string, to: string) => void;
  onDeleteNodes?: (ids: string[]) => void;
  onSelect?: (id: string | null) => void;
  selectedId?: string | null;
}) {
  const [positions, setPositions] = useState<Record<string, { x: number; y: number }>>({});
  const shape = JSON.stringify([steps.map((s) => s.id), edges]);
  useEffect(() => {
    let live = true;
    layout(steps, edges).then((p) => live && setPositions(p), () => {});
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape]);

  const nodes: Node<StepData>[] = steps.map((step) => ({
    id: step.id,
    type: "step",
    position: positions[step.id] ?? { x: 0, y: 0 },
    data: { step, status: statuses[step.id] },
    selected: step.id === selectedId,
    deletable: !!onDeleteNodes,
    connectable: !!onConnect,
  }));
  const flowEdges: Edge[] = edges.map((e) => ({
    id: `${e.source}->${e.target}`,
    source: e.source,
    target: e.target,
    animated: statuses[e.source] === "RUNNING",
    className: e.implicit ? "edge-implicit" : "edge-needs",
    deletable: false,
  }));

  return (
    <div className="graph" data-testid="workflow-graph" aria-label="Workflow graph">
      <ReactFlow
        nodes={nodes}
        edges={flowEdges}
        nodeTypes={nodeTypes}
        fitView
        fitViewOptions={{ maxZoom: 1 }}
        key={Object.keys(positions).join(",")}
        nodesDraggable={false}
        nodesConnectable={!!onConnect}
        onConnect={(c: Connection) => c.source && c.target && onConnect?.(c.source, c.target)}
        onNodesDelete={(deleted) => onDeleteNodes?.(deleted.map((n) => n.id))}
        // The nodes are derived from the YAML: selection (click, or Enter on a focused node) is kept by the parent.
        onNodesChange={(changes) => {
          for (const change of changes) if (change.type === "select") onSelect?.(change.selected ? change.id : null);
        }}
        onPaneClick={() => onSelect?.(null)}
        deleteKeyCode={onDeleteNodes ? ["Delete", "Backspace"] : null}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
