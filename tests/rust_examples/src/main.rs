//! The 18 Rust examples of Qdrant's "Points" page (the project's seed page, copied to
//! tests/integration/seed_points.md), run against a real server by
//! tests/integration/test_rust_examples.py.
//!
//! Usage: seed-rust-examples GRPC_URL COLLECTION EXAMPLE|all
//!
//! Each example is the page's block copied into a function of its own, with the
//! smallest edits that let it run:
//! - `"{collection_name}"` (a placeholder on the page) is the COLLECTION argument;
//! - the page's statement discards what the call returns: here it is bound to
//!   `response`, which is printed as one JSON line `{"example": ..., "answer": ...}`
//!   so the test can check it;
//! - the slips marked "Mended:" below.
//!
//! The test checks that every block of the page is in this file with only these
//! edits, so keep them in step.

use anyhow::{bail, Result};
use qdrant_client::client::QdrantClient;
use qdrant_client::qdrant::{
    point_id::PointIdOptions, vectors::VectorsOptions, CountResponse, GetResponse, PointId,
    PointsOperationResponse, RetrievedPoint, ScrollResponse, UpdateBatchResponse, UpdateResult,
    Vectors,
};
use serde_json::{json, Value};

const EXAMPLES: [&str; 18] = [
    "upsert_uuid",
    "upsert_uuid_again",
    "upsert_batch",
    "upsert_named",
    "update_vectors",
    "delete_vectors",
    "set_payload",
    "set_payload_filter",
    "overwrite_payload",
    "delete_payload",
    "delete_payload_filter",
    "clear_payload",
    "delete_points",
    "delete_points_filter",
    "get_points",
    "scroll",
    "count",
    "batch_updates",
];

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        bail!("usage: {} GRPC_URL COLLECTION EXAMPLE|all", args[0]);
    }
    let (url, collection_name, which) = (args[1].as_str(), args[2].as_str(), args[3].as_str());
    let names: Vec<&str> = if which == "all" { EXAMPLES.to_vec() } else { vec![which] };
    // The page builds its client in the first example and uses it in all the others.
    let client = QdrantClient::from_url(url).build()?;
    for name in names {
        let answer = match name {
            "upsert_uuid" => upsert_uuid(url, collection_name).await?,
            "upsert_uuid_again" => upsert_uuid_again(&client, collection_name).await?,
            "upsert_batch" => upsert_batch(&client, collection_name).await?,
            "upsert_named" => upsert_named(&client, collection_name).await?,
            "update_vectors" => update_vectors(&client, collection_name).await?,
            "delete_vectors" => delete_vectors(&client, collection_name).await?,
            "set_payload" => set_payload(&client, collection_name).await?,
            "set_payload_filter" => set_payload_filter(&client, collection_name).await?,
            "overwrite_payload" => overwrite_payload(&client, collection_name).await?,
            "delete_payload" => delete_payload(&client, collection_name).await?,
            "delete_payload_filter" => delete_payload_filter(&client, collection_name).await?,
            "clear_payload" => clear_payload(&client, collection_name).await?,
            "delete_points" => delete_points(&client, collection_name).await?,
            "delete_points_filter" => delete_points_filter(&client, collection_name).await?,
            "get_points" => get_points(&client, collection_name).await?,
            "scroll" => scroll(&client, collection_name).await?,
            "count" => count(&client, collection_name).await?,
            "batch_updates" => batch_updates(&client, collection_name).await?,
            other => bail!("no example {other:?}; one of {EXAMPLES:?} or all"),
        };
        println!("{}", json!({"example": name, "answer": answer}));
    }
    Ok(())
}

// ---- what the examples return, as JSON in the shapes of the REST API's results ----

trait ToAnswer {
    fn to_answer(&self) -> Value;
}

impl ToAnswer for UpdateResult {
    fn to_answer(&self) -> Value {
        let status = match self.status {
            1 => "acknowledged".to_string(),
            2 => "completed".to_string(),
            other => format!("unknown ({other})"),
        };
        json!({"operation_id": self.operation_id, "status": status})
    }
}

impl ToAnswer for PointsOperationResponse {
    fn to_answer(&self) -> Value {
        self.result.as_ref().map_or(Value::Null, |r| r.to_answer())
    }
}

impl ToAnswer for UpdateBatchResponse {
    fn to_answer(&self) -> Value {
        self.result.iter().map(|r| r.to_answer()).collect()
    }
}

impl ToAnswer for PointId {
    fn to_answer(&self) -> Value {
        match &self.point_id_options {
            Some(PointIdOptions::Num(n)) => json!(n),
            Some(PointIdOptions::Uuid(u)) => json!(u),
            None => Value::Null,
        }
    }
}

impl ToAnswer for Vectors {
    fn to_answer(&self) -> Value {
        match &self.vectors_options {
            Some(VectorsOptions::Vector(v)) => json!(v.data),
            Some(VectorsOptions::Vectors(named)) => named
                .vectors
                .iter()
                .map(|(name, v)| (name.clone(), json!(v.data)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            None => Value::Null,
        }
    }
}

/// `vector` only when the point came with vectors, as REST leaves the key out.
impl ToAnswer for RetrievedPoint {
    fn to_answer(&self) -> Value {
        let id = self.id.as_ref().map_or(Value::Null, |id| id.to_answer());
        let mut record = json!({"id": id, "payload": self.payload});
        if let Some(vectors) = &self.vectors {
            record["vector"] = vectors.to_answer();
        }
        record
    }
}

impl ToAnswer for GetResponse {
    fn to_answer(&self) -> Value {
        self.result.iter().map(|p| p.to_answer()).collect()
    }
}

impl ToAnswer for ScrollResponse {
    fn to_answer(&self) -> Value {
        let points: Vec<Value> = self.result.iter().map(|p| p.to_answer()).collect();
        let next = self.next_page_offset.as_ref().map_or(Value::Null, |id| id.to_answer());
        json!({"points": points, "next_page_offset": next})
    }
}

impl ToAnswer for CountResponse {
    fn to_answer(&self) -> Value {
        json!({"count": self.result.as_ref().map(|r| r.count)})
    }
}

// ---- the page's examples, in page order ----

/// Line 123 of the page.
async fn upsert_uuid(url: &str, collection_name: &str) -> Result<Value> {
    use qdrant_client::{client::QdrantClient, qdrant::PointStruct};
    use serde_json::json;

    // Mended: test servers listen on a free port, not 6334, so the address is an argument.
    let client = QdrantClient::from_url(url).build()?;

    let response = client
        .upsert_points_blocking(
            collection_name.to_string(),
            vec![PointStruct::new(
                "5c56c793-69f3-4fbf-87e6-c4bf54c28c26".to_string(),
                // Mended: the page sends a 4-d vector here, in the section whose collection has
                // 3-d vectors (its HTTP and Python twins send 3); the 4th component is dropped.
                vec![0.05, 0.61, 0.76],
                json!(
                    {"color": "Red"}
                )
                .try_into()
                .unwrap(),
            )],
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 191 of the page.
async fn upsert_uuid_again(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::PointStruct;
    use serde_json::json;

    let response = client
        .upsert_points_blocking(
            // Mended: the page passes `1` as the collection name (a slip: every other
            // example names the collection here).
            collection_name,
            vec![PointStruct::new(
                "5c56c793-69f3-4fbf-87e6-c4bf54c28c26".to_string(),
                // Mended: the page sends a 4-d vector here, in the section whose collection has
                // 3-d vectors (its HTTP and Python twins send 3); the 4th component is dropped.
                vec![0.05, 0.61, 0.76],
                json!(
                    {"color": "Red"}
                )
                .try_into()
                .unwrap(),
            )],
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 355 of the page.
async fn upsert_batch(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::PointStruct;
    use serde_json::json;

    let response = client
        .upsert_points_batch_blocking(
            collection_name.to_string(),
            vec![
                PointStruct::new(
                    1,
                    vec![0.9, 0.1, 0.1],
                    json!(
                        {"color": "red"}
                    )
                    .try_into()
                    .unwrap(),
                ),
                PointStruct::new(
                    2,
                    vec![0.1, 0.9, 0.1],
                    json!(
                        {"color": "green"}
                    )
                    .try_into()
                    .unwrap(),
                ),
                PointStruct::new(
                    3,
                    vec![0.1, 0.1, 0.9],
                    json!(
                        {"color": "blue"}
                    )
                    .try_into()
                    .unwrap(),
                ),
            ],
            None,
            100,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 484 of the page.
async fn upsert_named(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::PointStruct;
    use std::collections::HashMap;

    let response = client
        .upsert_points_blocking(
            collection_name.to_string(),
            vec![
                PointStruct::new(
                    1,
                    HashMap::from([
                        ("image".to_string(), vec![0.9, 0.1, 0.1, 0.2]),
                        (
                            "text".to_string(),
                            vec![0.4, 0.7, 0.1, 0.8, 0.1, 0.1, 0.9, 0.2],
                        ),
                    ]),
                    HashMap::new().into(),
                ),
                PointStruct::new(
                    2,
                    HashMap::from([
                        ("image".to_string(), vec![0.2, 0.1, 0.3, 0.9]),
                        (
                            "text".to_string(),
                            vec![0.5, 0.2, 0.7, 0.4, 0.7, 0.2, 0.3, 0.9],
                        ),
                    ]),
                    HashMap::new().into(),
                ),
            ],
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 605 of the page.
async fn update_vectors(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::PointVectors;
    use std::collections::HashMap;

    let response = client
        .update_vectors_blocking(
            collection_name,
            &[
                PointVectors {
                    id: Some(1.into()),
                    vectors: Some(
                        HashMap::from([("image".to_string(), vec![0.1, 0.2, 0.3, 0.4])]).into(),
                    ),
                },
                PointVectors {
                    id: Some(2.into()),
                    vectors: Some(
                        HashMap::from([(
                            "text".to_string(),
                            vec![0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2],
                        )])
                        .into(),
                    ),
                },
            ],
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 673 of the page.
async fn delete_vectors(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf, PointsIdsList, PointsSelector, VectorsSelector,
    };

    let response = client
        .delete_vectors_blocking(
            collection_name,
            &PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                    ids: vec![0.into(), 3.into(), 10.into()],
                })),
            },
            &VectorsSelector {
                names: vec!["text".into(), "image".into()],
            },
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 737 of the page.
async fn set_payload(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf, PointsIdsList, PointsSelector,
    };
    use serde_json::json;

    let response = client
        .set_payload_blocking(
            collection_name,
            &PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                    ids: vec![0.into(), 3.into(), 10.into()],
                })),
            },
            json!({
                "property1": "string",
                "property2": "string",
            })
            .try_into()
            .unwrap(),
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 823 of the page.
async fn set_payload_filter(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf, Condition, Filter, PointsSelector,
    };
    use serde_json::json;

    let response = client
        .set_payload_blocking(
            collection_name,
            &PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Filter(Filter::must([
                    Condition::matches("color", "red".to_string()),
                ]))),
            },
            json!({
                "property1": "string",
                "property2": "string",
            })
            .try_into()
            .unwrap(),
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 889 of the page.
async fn overwrite_payload(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf, PointsIdsList, PointsSelector,
    };
    use serde_json::json;

    let response = client
        .overwrite_payload_blocking(
            collection_name,
            &PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                    ids: vec![0.into(), 3.into(), 10.into()],
                })),
            },
            json!({
                "property1": "string",
                "property2": "string",
            })
            .try_into()
            .unwrap(),
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 945 of the page.
async fn delete_payload(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf, PointsIdsList, PointsSelector,
    };

    let response = client
        .delete_payload_blocking(
            collection_name,
            &PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                    ids: vec![0.into(), 3.into(), 100.into()],
                })),
            },
            vec!["color".to_string(), "price".to_string()],
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 1015 of the page.
async fn delete_payload_filter(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf, Condition, Filter, PointsSelector,
    };

    let response = client
        .delete_payload_blocking(
            collection_name,
            &PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Filter(Filter::must([
                    Condition::matches("color", "red".to_string()),
                ]))),
            },
            vec!["color".to_string(), "price".to_string()],
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 1063 of the page.
async fn clear_payload(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf, PointsIdsList, PointsSelector,
    };

    let response = client
        .clear_payload_blocking(
            collection_name,
            Some(PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                    ids: vec![0.into(), 3.into(), 100.into()],
                })),
            }),
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 1108 of the page.
async fn delete_points(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf, PointsIdsList, PointsSelector,
    };

    let response = client
        .delete_points_blocking(
            collection_name,
            &PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                    ids: vec![0.into(), 3.into(), 100.into()],
                })),
            },
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 1176 of the page.
async fn delete_points_filter(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf, Condition, Filter, PointsSelector,
    };

    let response = client
        .delete_points_blocking(
            collection_name,
            &PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Filter(Filter::must([
                    Condition::matches("color", "red".to_string()),
                ]))),
            },
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 1223 of the page.
async fn get_points(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    let response = client
        .get_points(
            collection_name,
            &[0.into(), 30.into(), 100.into()],
            Some(false),
            Some(false),
            None,
        )
        .await?;
    Ok(response.to_answer())
}

/// Line 1311 of the page.
async fn scroll(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{Condition, Filter, ScrollPoints};

    let response = client
        .scroll(&ScrollPoints {
            collection_name: collection_name.to_string(),
            filter: Some(Filter::must([Condition::matches(
                "color",
                "red".to_string(),
            )])),
            limit: Some(1),
            with_payload: Some(true.into()),
            with_vectors: Some(false.into()),
            ..Default::default()
        })
        .await?;
    Ok(response.to_answer())
}

/// Line 1421 of the page.
async fn count(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{Condition, CountPoints, Filter};

    let response = client
        .count(&CountPoints {
            collection_name: collection_name.to_string(),
            filter: Some(Filter::must([Condition::matches(
                "color",
                "red".to_string(),
            )])),
            exact: Some(true),
        })
        .await?;
    Ok(response.to_answer())
}

/// Line 1651 of the page.
async fn batch_updates(client: &QdrantClient, collection_name: &str) -> Result<Value> {
    use qdrant_client::qdrant::{
        points_selector::PointsSelectorOneOf,
        points_update_operation::{
            DeletePayload, DeleteVectors, Operation, PointStructList, SetPayload, UpdateVectors,
        },
        PointStruct, PointVectors, PointsIdsList, PointsSelector, PointsUpdateOperation,
        VectorsSelector,
    };
    use serde_json::json;
    use std::collections::HashMap;

    let response = client
        .batch_updates_blocking(
            collection_name,
            &[
                PointsUpdateOperation {
                    operation: Some(Operation::Upsert(PointStructList {
                        points: vec![PointStruct::new(
                            1,
                            vec![1.0, 2.0, 3.0, 4.0],
                            json!({}).try_into().unwrap(),
                        )],
                    })),
                },
                PointsUpdateOperation {
                    operation: Some(Operation::UpdateVectors(UpdateVectors {
                        points: vec![PointVectors {
                            id: Some(1.into()),
                            vectors: Some(vec![1.0, 2.0, 3.0, 4.0].into()),
                        }],
                    })),
                },
                PointsUpdateOperation {
                    operation: Some(Operation::DeleteVectors(DeleteVectors {
                        points_selector: Some(PointsSelector {
                            points_selector_one_of: Some(PointsSelectorOneOf::Points(
                                PointsIdsList {
                                    ids: vec![1.into()],
                                },
                            )),
                        }),
                        vectors: Some(VectorsSelector {
                            names: vec!["".into()],
                        }),
                    })),
                },
                PointsUpdateOperation {
                    operation: Some(Operation::OverwritePayload(SetPayload {
                        points_selector: Some(PointsSelector {
                            points_selector_one_of: Some(PointsSelectorOneOf::Points(
                                PointsIdsList {
                                    ids: vec![1.into()],
                                },
                            )),
                        }),
                        payload: HashMap::from([("test_payload".to_string(), 1.into())]),
                    })),
                },
                PointsUpdateOperation {
                    operation: Some(Operation::SetPayload(SetPayload {
                        points_selector: Some(PointsSelector {
                            points_selector_one_of: Some(PointsSelectorOneOf::Points(
                                PointsIdsList {
                                    ids: vec![1.into()],
                                },
                            )),
                        }),
                        payload: HashMap::from([
                            ("test_payload_2".to_string(), 2.into()),
                            ("test_payload_3".to_string(), 3.into()),
                        ]),
                    })),
                },
                PointsUpdateOperation {
                    operation: Some(Operation::DeletePayload(DeletePayload {
                        points_selector: Some(PointsSelector {
                            points_selector_one_of: Some(PointsSelectorOneOf::Points(
                                PointsIdsList {
                                    ids: vec![1.into()],
                                },
                            )),
                        }),
                        keys: vec!["test_payload_2".to_string()],
                    })),
                },
                PointsUpdateOperation {
                    operation: Some(Operation::ClearPayload(PointsSelector {
                        points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                            ids: vec![1.into()],
                        })),
                    })),
                },
                PointsUpdateOperation {
                    operation: Some(Operation::Delete(PointsSelector {
                        points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                            ids: vec![1.into()],
                        })),
                    })),
                },
            ],
            None,
        )
        .await?;
    Ok(response.to_answer())
}
